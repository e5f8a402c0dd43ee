import { defineConfig } from 'vitest/config';

// Two projects: unit tests need nothing running; integration tests get real etcd, Consul and MinIO
// from the global setup (scripts/services.sh), handed over through KVDR_* environment variables.
export default defineConfig({
  test: {
    reporters: ['default', './test/harness/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/harness/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Two cores: running integration files one at a time keeps the services' timing honest.
          fileParallelism: false,
        },
      },
    ],
  },
});
