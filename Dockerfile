# kvdr service image: Node 24 LTS (kvdr needs >= 22; the tests run on the Node 24 that scripts/versions.sh
# pins), production dependencies only, runs as a non-root user.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production KVDR_CONFIG=/etc/kvdr/kvdr.yaml
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
RUN ln -s /app/dist/cli/kvdr.js /usr/local/bin/kvdr && ln -s /app/dist/cli/px-kvdb-restore.js /usr/local/bin/px-kvdb-restore
# The state directory (local repositories, restore safety backups) belongs to the runtime user: a named
# volume mounted here starts as a copy of it, so it is writable without running as root.
RUN mkdir -p /var/lib/kvdr /etc/kvdr && chown node:node /var/lib/kvdr
USER node
EXPOSE 9464
ENTRYPOINT ["node", "/app/dist/cli/kvdr.js"]
CMD ["serve"]
