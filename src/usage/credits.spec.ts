import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeCredits } from './credits';

describe('credits', () => {
  const prices = { per_request: 0.5, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 5 };

  it('adds the per-request price and both token prices per 1,000 tokens', () => {
    assert.equal(computeCredits(prices, 1000, 1000), 6.5);
    assert.equal(computeCredits(prices, 250, 100), 0.5 + 0.25 + 0.5);
    assert.equal(computeCredits(prices, 0, 0), 0.5);
  });

  it('costs nothing for a free model', () => {
    assert.equal(computeCredits({ per_request: 0, per_1k_prompt_tokens: 0, per_1k_completion_tokens: 0 }, 5000, 5000), 0);
  });

  it('rounds to 6 decimals without float noise', () => {
    const cheap = { per_request: 0, per_1k_prompt_tokens: 0.0015, per_1k_completion_tokens: 0.002 };
    assert.equal(computeCredits(cheap, 1234, 0), 0.001851);
    assert.equal(computeCredits(cheap, 1, 0), 0.000002); // 0.0000015 rounds half up
    assert.equal(computeCredits({ per_request: 0.1, per_1k_prompt_tokens: 0, per_1k_completion_tokens: 0.2 }, 0, 1000), 0.3);
    assert.equal(computeCredits({ per_request: 0, per_1k_prompt_tokens: 1e-7, per_1k_completion_tokens: 0 }, 1, 0), 0);
  });

  it('treats negative or non-finite token counts as zero', () => {
    assert.equal(computeCredits(prices, -10, Number.NaN), 0.5);
    assert.equal(computeCredits(prices, Number.POSITIVE_INFINITY, 0), 0.5);
  });
});
