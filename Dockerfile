# Payment gateway function app (Python 3.13, v1 model) on the Azure Functions host.
# Same shape as Core Tools' generated Dockerfile (func init --docker), hardened:
# non-root user, port 8080, no secrets in the image. For reproducible builds, CI may
# replace the tag with a digest (FROM ...:4-python3.13@sha256:<digest>); refresh monthly.
FROM mcr.microsoft.com/azure-functions/python:4-python3.13

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    ASPNETCORE_URLS=http://+:8080 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Explicit modes: a file that is 0600 in the build context (a umask, a checkout tool) would
# otherwise be copied as root-only and break the non-root start. Root owns the code; the app
# user can read it and not change it.
COPY --chmod=0644 requirements.txt /
RUN pip install --no-cache-dir -r /requirements.txt

# An unprivileged user; a fixed numeric UID lets Kubernetes verify runAsNonRoot.
RUN groupadd --system --gid 10001 funcapp \
    && useradd --system --no-log-init --uid 10001 --gid funcapp --home-dir /home --no-create-home --shell /usr/sbin/nologin funcapp

COPY --chmod=0755 . /home/site/wwwroot

USER 10001:10001
EXPOSE 8080

# The host answers GET / with 200 once it is up (the same check func kubernetes deploy uses).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=4)"]
