# Loopline on the official Apache Airflow 3.3 image (Python 3.11).
# Build: docker build -t loopline . ; run it like any Airflow 3 image (api-server, scheduler,
# dag-processor, triggerer). For Astro, use `FROM astrocrpublic.azurecr.io/runtime:3.3-<N>`
# instead: the steps below are the same.
# GPU variant (training on NVIDIA GPUs): the same image with TensorFlow's CUDA 12 and cuDNN 9
# libraries as wheels, pinned with their hashes in requirements-gpu.lock (requirements.lock
# plus the nvidia-* packages, nothing else moved):
#   docker build --build-arg LOCK=requirements-gpu.lock -t loopline:gpu .
# Run it where the NVIDIA driver (>= 525, CUDA 12) and the container toolkit are installed:
#   docker run --gpus all loopline:gpu ... ; `loopline doctor` inside says what TensorFlow sees.
# Only the training workers need it: the other components run the CPU image.
# Pin the base by digest where you build (`docker buildx imagetools inspect` prints it):
#   docker build --build-arg BASE=apache/airflow:3.3.2-python3.11@sha256:<digest> .
# The digest is not written here because it could not be read from this project's machines
# (no container registry is reachable from them); a tag alone can be re-pointed upstream.
ARG BASE=apache/airflow:3.3.2-python3.11
FROM ${BASE}
ARG LOCK=requirements.lock

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
COPY --chown=airflow:root ${LOCK} ./
RUN pip install --no-cache-dir --require-hashes -r ${LOCK}
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root include/ include/
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

COPY --chown=airflow:root dags/ dags/
COPY --chown=airflow:root plugins/ plugins/
COPY --chown=airflow:root airflow_settings.yaml ./

ENV LOOPLINE_PIPELINES_DIR=/opt/airflow/include/pipelines \
    PYSPARK_PYTHON=/usr/local/bin/python
# TensorFlow takes GPU memory as it needs it rather than all of it at start-up, so a training
# task leaves room for another process on the same card (the CPU image ignores it).
ENV TF_FORCE_GPU_ALLOW_GROWTH=true
# The production auth manager (Airflow documents the simple one as for development): users,
# roles and per-DAG permissions in the metadata database. After `airflow db migrate`, run
# `airflow fab-db migrate`, create the users (`airflow users create ... --role Viewer|User|Op|
# Admin`), and give the Viewer role the plugin view (`airflow roles add-perms Viewer -r Plugins
# -a can_read`), or viewers do not see the Loopline view. The README's Roles section says who
# may do what. Loopline's subclass only lets `promotion.approvers` name users by user name
# (FAB's own compares HITL assignees with its numeric user ids: loopline/airflow/auth.py).
ENV AIRFLOW__CORE__AUTH_MANAGER=loopline.airflow.auth.FabAuthManager
