import type { CreditsSection } from '../config/config.schema';

export type CreditPrices = Pick<CreditsSection, 'per_request' | 'per_1k_prompt_tokens' | 'per_1k_completion_tokens'>;

/**
 * What one request costs: per_request + prompt/1000 × per_1k_prompt_tokens + completion/1000 ×
 * per_1k_completion_tokens, rounded to 6 decimals. The sum is taken in micro-credits so that
 * float noise (0.1 + 0.2) never reaches the numeric column.
 */
export function computeCredits(prices: CreditPrices, promptTokens: number, completionTokens: number): number {
  const micro =
    prices.per_request * 1e6 +
    tokens(promptTokens) * prices.per_1k_prompt_tokens * 1e3 +
    tokens(completionTokens) * prices.per_1k_completion_tokens * 1e3;
  return Math.round(micro) / 1e6;
}

function tokens(count: number): number {
  return Number.isFinite(count) && count > 0 ? count : 0;
}
