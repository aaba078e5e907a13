"""The thin Airflow layer: hooks, operators and the DAG factory.

This is the only part of the package that imports Airflow. Hooks turn connections into the
objects the libraries use; operators parse their arguments, call the stage libraries and log;
the logic lives in the stage packages, tested without Airflow.
"""
