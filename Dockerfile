# syntax=docker/dockerfile:1

# --- build: full dependency tree, compile TypeScript to dist/ ---------------------------------
FROM node:22-slim AS build
WORKDIR /app
# @nestjs/swagger pulls in @scarf/scarf, whose postinstall phones home.
ENV SCARF_ANALYTICS=false
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN npx tsc -p tsconfig.build.json

# --- runtime: production dependencies and the compiled output only ----------------------------
FROM node:22-slim AS runtime
WORKDIR /app
# PORT and HOST are deliberately not set here: environment wins over drawbridge.yaml, and the
# defaults (8080, 0.0.0.0) are already right for a container.
ENV NODE_ENV=production \
    SCARF_ANALYTICS=false \
    DRAWBRIDGE_DATA_DIR=/app/data
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The data folder is only written in embedded mode (no DATABASE_URL); mount a volume there to
# keep the PGlite database and the generated admin token across container restarts.
RUN mkdir -p /app/data && chown 1000:1000 /app/data
# Numeric uid (the image's `node` user) so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# Drawbridge drains on SIGTERM (README, "Shutdown and draining"), so node itself is the container's process: never
# `npm start`, which does not forward signals.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/live',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/src/main.js"]
