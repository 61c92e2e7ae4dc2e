# Build: offline sqlx query data (.sqlx) means no database is needed at build time.
FROM rust:1.89-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY Cargo.toml Cargo.lock ./
COPY .sqlx .sqlx
COPY api api
COPY migrations migrations
COPY static static
COPY tests tests
COPY bench bench
RUN cargo build --release --locked --bin nts

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 nts
COPY --from=build /src/target/release/nts /usr/local/bin/nts
COPY static /app/static
ENV NTS_STATIC_DIR=/app/static NTS_ADDRESS=0.0.0.0:9000
USER nts
EXPOSE 9000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/nts"]
