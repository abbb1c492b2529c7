"""The `agentry` command line: the user and developer subcommands (it may import every other package)."""
