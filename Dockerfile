# skiff in a container: one image for servers and agents.
#
#   docker build -t skiff .                       # builds skiff from source
#   docker build --target prebuilt \
#     --build-arg SKIFF_BINARY=dist/skiff-amd64 -t skiff .   # uses scripts/build.sh's output
#
# Both base images can be replaced (--build-arg GO_IMAGE=..., BASE_IMAGE=...),
# e.g. by a mirror or a locally imported image when no registry is reachable.
# The prebuilt target comes before the Go stage so that even the classic
# builder, which builds every stage up to --target, never needs GO_IMAGE.
# The source build needs BuildKit (the default builder since Docker 23): the
# classic builder would also build the prebuilt stage, and fail on its COPY.
# Under BuildKit, --platform linux/arm64 builds (in emulation) for arm64.
#
# Run it privileged, with the host's cgroups and kernel modules:
#   docker run -d --privileged --cgroupns=host -v /lib/modules:/lib/modules:ro \
#     -v skiff-data:/var/lib/skiff -p 6443:6443 skiff server
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# The runtime: iptables (nft and legacy; skiff runs iptables-save and
# iptables-restore) and CA certificates for pulling images. skiff configures
# links and routes through netlink, so no iproute2.
FROM ${BASE_IMAGE} AS base
RUN if ! command -v xtables-nft-multi >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi
VOLUME /var/lib/skiff
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/skiff"]

# A binary built beforehand, by scripts/build.sh, from the build context.
FROM base AS prebuilt
# TARGETARCH is set by BuildKit; the classic builder leaves it empty, so
# pass SKIFF_BINARY there.
ARG TARGETARCH
ARG SKIFF_BINARY=dist/skiff-${TARGETARCH}
COPY ${SKIFF_BINARY} /usr/local/bin/skiff

# The build from source, with the same flags as a release (scripts/build.sh).
FROM ${GO_IMAGE} AS build
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
RUN if ! command -v file >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends file \
        && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN arch=${TARGETARCH:-$(go env GOARCH)} \
    && SKIFF_BUILD_ARCHES=$arch VERSION=$VERSION COMMIT=$COMMIT DIST_DIR=/out scripts/build.sh \
    && mv /out/skiff-$arch /out/skiff

# The default target.
FROM base AS runtime
COPY --from=build /out/skiff /usr/local/bin/skiff
