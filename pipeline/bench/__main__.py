from . import cli, models, onednn, realfaces, speed  # noqa: F401  the modules register their commands

cli()
