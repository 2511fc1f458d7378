"""The REST API (`python -m api`): jobs, metrics and history, foresight, and Prometheus's /metrics.

create_app(settings) in app.py assembles it: deps.py holds what the routes depend on (the context, the token
check), routers/ one module per group of endpoints; auth, errors, encode, window and upload_limit are helpers.
"""
