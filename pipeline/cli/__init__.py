"""The command line, `python run.py COMMAND` (or the `faces` console script): click commands that
parse their options, call one function of stages.Pipeline and print its summary. Nothing else in
the package imports it.

Public: `cli`, the click group.
"""
from pipeline.cli.commands import cli

__all__ = ["cli"]
