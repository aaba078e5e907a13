"""The thin Airflow layer: operators, hooks, triggers and the DAG factory.

This is the only part of the package that imports Airflow. Operators parse their arguments,
call the stage libraries and log; the logic lives in the stage packages.
"""
