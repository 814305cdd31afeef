# buildah's side of the Node benchmark (scripts/bench node): npm ci from
# Debian's npm in a build stage, then the app on the Node base.
ARG BASE
ARG BUILD_BASE
FROM ${BUILD_BASE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM ${BASE}
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json app.js server.js ./
RUN useradd --uid 1000 --create-home app
USER 1000:1000
ENV NODE_ENV=production
EXPOSE 3000
HEALTHCHECK --interval=2s CMD ["node", "-e", "require('http').get('http://127.0.0.1:3000/health', (r) => process.exit(r.statusCode < 400 ? 0 : 1)).on('error', () => process.exit(1))"]
CMD ["node", "server.js"]
