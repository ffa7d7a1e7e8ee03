"""Results: the durable result log (SQLite + journal), the NG image archive and the history
reader that the MES server answers from."""
