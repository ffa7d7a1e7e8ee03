"""The web HMI: FastAPI app (REST + OpenAPI + static page), users and sessions, uvicorn server."""
