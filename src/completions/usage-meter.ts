import type { ChatCompletionChunk, ChatMessage, Usage } from '../providers/openai-types';
import { countPromptTokens, countTextTokens } from '../usage/token-estimate';

/**
 * Collects what usage accounting needs from a relayed answer: the upstream's own usage when it
 * sends one, else the text seen so far so the tokenizer can estimate (a cancelled or cut stream
 * is metered on what it delivered).
 */
export class UsageMeter {
  private reported?: Usage;
  private readonly seen: string[] = [];

  constructor(private readonly messages: readonly ChatMessage[]) {}

  observeUsage(usage: Usage | null | undefined): void {
    if (usage && typeof usage.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number') this.reported = usage;
  }

  observeChunk(chunk: ChatCompletionChunk): void {
    this.observeUsage(chunk.usage);
    for (const choice of chunk.choices) {
      const delta = choice.delta;
      if (typeof delta?.content === 'string' && delta.content.length > 0) this.seen.push(delta.content);
      for (const call of delta?.tool_calls ?? []) {
        if (call.function?.name) this.seen.push(call.function.name);
        if (call.function?.arguments) this.seen.push(call.function.arguments);
      }
    }
  }

  observeText(text: string | null | undefined): void {
    if (text) this.seen.push(text);
  }

  /** The upstream's figures when it gave them; otherwise a tokenizer estimate, flagged. */
  result(): { prompt: number; completion: number; estimated: boolean } {
    if (this.reported) return { prompt: this.reported.prompt_tokens, completion: this.reported.completion_tokens, estimated: false };
    return { prompt: countPromptTokens(this.messages), completion: countTextTokens(this.seen.join('')), estimated: true };
  }
}
