/**
 * Served when no config file exists: model `kiro` from one `mock` account with 3 slots, so
 * `npm ci && npm start` works on a fresh machine. The start-up log says so loudly.
 */
export const DEMO_CONFIG = {
  models: [
    {
      id: 'kiro',
      owned_by: 'drawbridge',
      credits: { per_request: 0, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 5 },
    },
  ],
  accounts: [{ id: 'mock-1', provider: 'mock', max_concurrency: 3, latency_ms: 50, tokens_per_second: 200 }],
};
