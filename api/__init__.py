"""The REST API (`python -m api`): jobs, metrics and history, foresight, and Prometheus's /metrics.

create_app(settings) in app.py builds it; each router module holds one group of endpoints.
"""
