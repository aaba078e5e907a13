"""The embedded local stack: S3-compatible server, Kafka-protocol broker and Airflow 3.

Started by ``loopline stack up`` (``make run``); all state lives under one folder
(``.loopline/`` by default). Nothing here imports Airflow: its components run as processes.
"""
