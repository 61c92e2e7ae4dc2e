# Build: offline sqlx query data (.sqlx) means no database is needed at build time.
FROM rust:1.89-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY .sqlx .sqlx
COPY api api
COPY migrations migrations
COPY static static
# sqlx-postgres with nts's patch for PgBouncer (Cargo.toml, [patch.crates-io]).
COPY vendor vendor
# Cargo reads every workspace member's manifest (one Cargo.lock for all), never
# the sources of those it does not build: only the service is built.
COPY tests/kit/Cargo.toml tests/kit/
COPY tests/api/Cargo.toml tests/api/
COPY tests/bench/Cargo.toml tests/bench/
COPY tests/torture/Cargo.toml tests/torture/
RUN cargo build --release --locked -p nts --bin nts

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin nts
COPY --from=build /src/target/release/nts /usr/local/bin/nts
COPY static /app/static
ENV NTS_STATIC_DIR=/app/static NTS_ADDRESS=0.0.0.0:9000
# Never root: the service needs no privilege (port 9000, no files written).
USER nts:nts
EXPOSE 9000
STOPSIGNAL SIGTERM
# `nts healthcheck` asks this container's nts for /healthz (the database answers too).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/nts", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/nts"]
