"""One module per `sent` subcommand; each exposes `main(argv: list[str]) -> int`."""
