/** The metric names of DESIGN §3.5 (contract). */
export const METRIC = {
  requests: 'drawbridge_requests_total',
  duration: 'drawbridge_request_duration_seconds',
  ttft: 'drawbridge_time_to_first_token_seconds',
  overhead: 'drawbridge_gateway_overhead_seconds',
  tokens: 'drawbridge_tokens_total',
  credits: 'drawbridge_credits_total',
  accountSlots: 'drawbridge_account_slots',
  queueDepth: 'drawbridge_pool_queue_depth',
  upstreamRequests: 'drawbridge_upstream_requests_total',
  storeErrors: 'drawbridge_rate_limit_store_errors_total',
} as const;

export type RequestStatus = 'success' | 'error' | 'rate_limited' | 'cancelled';
