"""The labeler's routes, one APIRouter a module; labeler.app includes them."""
