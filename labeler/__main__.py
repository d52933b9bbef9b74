"""python -m labeler [--db PATH] [--host H] [--port P] [--password PW]: the
batch-labeling web tool. Bound to anything but a loopback address it needs a
password (--password or $SKETCHLAB_LABELER_PASSWORD); the browser asks for it
(any user name). It answers only requests that name localhost, the --host
address or an --allowed-host name, so a web page cannot reach it under its
own name (DNS rebinding)."""
import argparse
import os
import sys

from db import default_path
from db.cli import add_db_option, exit_on_error
from labeler.security import DEFAULT_HOST, PASSWORD_ENV
from labeler.settings import settings
from service.access import is_loopback

DEFAULT_PORT = 7861


def parse(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labeler", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a host name the labeler is reached by, besides localhost and "
                             "--host (repeatable); requests naming any other host are "
                             "refused, which stops DNS rebinding")
    parser.add_argument("--password", default=None,
                        help=f"required off localhost (default: ${PASSWORD_ENV})")
    parser.add_argument("--demo-url", default=settings.demo_url, metavar="URL",
                        help=f"where the demo runs, linked from every page "
                             f"(default: {settings.demo_url})")
    parser.add_argument("--alpha", type=float, default=None,
                        help="backbone width for Retrain (default: the live version's, else 1.0)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    settings.demo_url = args.demo_url
    password = args.password or os.environ.get(PASSWORD_ENV) or None
    if not is_loopback(args.host) and not password:
        print(f"error: the labeler is bound to {args.host}, not to this computer only: set a "
              f"password with --password or {PASSWORD_ENV}.", file=sys.stderr)
        return 2
    import uvicorn
    from labeler.app import create_app
    with exit_on_error():
        app = create_app(args.db or default_path(), password=password,
                         train_options={"alpha": args.alpha} if args.alpha else None,
                         host=args.host, allowed_hosts=args.allowed_host)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Labeler on http://{host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
