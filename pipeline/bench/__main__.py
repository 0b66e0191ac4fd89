from pipeline.bench import cli, cpu, layertimes, models, onednn, parse, realfaces, serve, speed, throughput  # noqa: F401  the modules register their commands

cli()
