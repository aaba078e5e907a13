# Loopline on the official Apache Airflow 3.3 image (Python 3.11).
# Build: docker build -t loopline . ; run it like any Airflow 3 image (api-server, scheduler,
# dag-processor, triggerer). For Astro, use `FROM astrocrpublic.azurecr.io/runtime:3.3-<N>`
# instead: the steps below are the same.
FROM apache/airflow:3.3.2-python3.11

USER root
# Spark's driver is a JVM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java

USER airflow
WORKDIR /opt/airflow

# Dependencies first, pinned by the lock, so code changes rebuild only the last layers.
COPY --chown=airflow:root pyproject.toml requirements.lock README.md ./
COPY --chown=airflow:root include/ include/
RUN pip install --no-cache-dir --constraint requirements.lock .

COPY --chown=airflow:root dags/ dags/
COPY --chown=airflow:root plugins/ plugins/
COPY --chown=airflow:root airflow_settings.yaml ./

ENV LOOPLINE_PIPELINES_DIR=/opt/airflow/include/pipelines \
    PYSPARK_PYTHON=/usr/local/bin/python
