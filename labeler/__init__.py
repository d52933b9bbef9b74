"""The batch-labeling web tool and the folder importer."""
