FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY imageextract ./imageextract
RUN pip install --no-cache-dir .
ENV IMAGEEXTRACT_DATA_DIR=/data IMAGEEXTRACT_HOST=0.0.0.0
EXPOSE 8000
CMD ["imageextract", "serve", "--host", "0.0.0.0", "--port", "8000"]
