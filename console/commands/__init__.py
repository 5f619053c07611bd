"""One module per subcommand; see `console.cli`."""
