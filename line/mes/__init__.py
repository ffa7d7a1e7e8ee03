"""The OPC UA server for MES (northbound): its model, process, security and configuration."""
