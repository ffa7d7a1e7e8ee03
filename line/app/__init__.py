"""The application: the command line, building a station from its config, running it."""
