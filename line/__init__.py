"""The station: recipes, decision, the acquire → infer → decide → signal loop, the result
log, the HMI and the CLI. ``line`` uses ``camera``, ``inference`` and ``plc``; never the reverse."""
