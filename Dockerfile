# Loopline on the official Apache Airflow 3.3 image (Python 3.11).
# Build: docker build -t loopline . ; run it like any Airflow 3 image (api-server, scheduler,
# dag-processor, triggerer). For Astro, use `FROM astrocrpublic.azurecr.io/runtime:3.3-<N>`
# instead: the steps below are the same.
# Pin the base by digest where you build (`docker buildx imagetools inspect` prints it):
#   docker build --build-arg BASE=apache/airflow:3.3.2-python3.11@sha256:<digest> .
# The digest is not written here because it could not be read from this project's machines
# (no container registry is reachable from them); a tag alone can be re-pointed upstream.
ARG BASE=apache/airflow:3.3.2-python3.11
FROM ${BASE}

USER root
# Spark's driver is a JVM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java

USER airflow
WORKDIR /opt/airflow

# Dependencies first, every one pinned with its hashes by the lock (a package whose bytes
# differ from the locked ones is refused), so code changes rebuild only the last layers.
COPY --chown=airflow:root requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root include/ include/
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

COPY --chown=airflow:root dags/ dags/
COPY --chown=airflow:root plugins/ plugins/
COPY --chown=airflow:root airflow_settings.yaml ./

ENV LOOPLINE_PIPELINES_DIR=/opt/airflow/include/pipelines \
    PYSPARK_PYTHON=/usr/local/bin/python
