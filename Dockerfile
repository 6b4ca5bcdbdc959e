FROM python:3.11-slim
# Logs straight to the container's output; no .pyc files in an image that never changes.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY workers ./workers
RUN pip install --no-cache-dir .
USER nobody
# python -m bot in HTTP mode (/slack/events, /healthz); unused in Socket Mode.
EXPOSE 3000
CMD ["python", "-m", "workers"]
