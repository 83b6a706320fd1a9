# The pivitals primary as a container image (docker-compose.yml builds it for the `pivitals`
# profile). Build stage: the release profile of Cargo.toml; run stage: Debian slim, the binary,
# a non-root user and the data directory as a volume.
#
#   docker build -t pivitals-primary .
#   docker run -p 7070:7070 -v pivitals-data:/data pivitals-primary

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pivitals-primary \
    && cp target/release/pivitals-primary /usr/local/bin/pivitals-primary

FROM debian:bookworm-slim
# CA certificates for an InfluxDB behind https.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin pivitals \
    && mkdir -p /data \
    && chown pivitals:pivitals /data
COPY --from=build /usr/local/bin/pivitals-primary /usr/local/bin/pivitals-primary
USER pivitals
ENV PIVITALS_DATA_DIR=/data \
    PIVITALS_LISTEN=0.0.0.0:7070
VOLUME ["/data"]
EXPOSE 7070
ENTRYPOINT ["/usr/local/bin/pivitals-primary"]
