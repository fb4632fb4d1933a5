# syntax=docker/dockerfile:1
# One image for web (gunicorn, the default), worker, beat and Flower. Multi-stage: the virtualenv is built in the
# first stage, the runtime stage has only the shared libraries GeoDjango needs (GDAL, GEOS, PROJ) and runs as
# an unprivileged user.

# The portal's browser libraries (Leaflet, leaflet-geoman, world outlines) from npm, exactly as locked.
FROM node:20-bookworm-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
# Exactly the locked files: every requirement carries the hashes of its files (`make lock`), and the lock lists every
# dependency, so pip does not resolve again (a resolver run can pick a release newer than the lock: ops/bootstrap.sh).
COPY ops/lockcheck.py /tmp/lockcheck.py
RUN /venv/bin/pip install --no-deps --only-binary=:all: --require-hashes -r /tmp/requirements.txt \
    && /venv/bin/pip check && /venv/bin/python /tmp/lockcheck.py /tmp/requirements.txt

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgdal32 libgeos-c1v5 libproj25 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
COPY --from=build /venv /venv
# The CA bundle that signed RDS's certificates, where project/settings/production.py looks for it (RDS_CA_BUNDLE):
# connections to PostgreSQL verify the server's certificate and name against it (sslmode=verify-full).
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/rds/global-bundle.pem
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=project.settings.production
WORKDIR /app
# Owned by root: the application cannot rewrite its own code.
COPY . .
# STATICFILES_DIRS point into node_modules: collectstatic copies (and fingerprints) what the pages load.
COPY --from=assets /assets/node_modules /app/node_modules
# Static files (admin, Swagger UI, ReDoc) are collected at build time and served by WhiteNoise. The settings
# demand real secrets, so the build passes throwaway ones that never reach a running container.
RUN DJANGO_SECRET_KEY=build-only-collectstatic-secret-key-not-used-at-runtime-0123456789 \
    DJANGO_ALLOWED_HOSTS=build DATABASE_URL=postgis://build@localhost/build REDIS_URL=redis://localhost \
    python manage.py collectstatic --noinput --verbosity 0
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s CMD curl -fs http://127.0.0.1:8000/health/live/ || exit 1
# The processes are the Procfile's (ops/proc NAME); gunicorn's settings come from this environment (gunicorn.conf.py).
ENV WEB_BIND=0.0.0.0:8000 WEB_CONCURRENCY=4 FORWARDED_ALLOW_IPS=*
CMD ["ops/proc", "web"]
