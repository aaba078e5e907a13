"""The ``loopline`` subcommands, one module each; `loopline.cli` parses and dispatches."""
