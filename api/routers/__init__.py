"""The API's routes, one module per group: each holds an APIRouter and depends only on api.deps (the context
and the token check) and on leaf helpers (api.encode, api.errors, api.window), never on api.app, which includes them.
"""
