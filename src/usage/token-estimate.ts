import { encode } from 'gpt-tokenizer';
import type { ChatMessage } from '../providers/openai-types';

/*
 * Token counts for when an upstream reports none (and for the mock provider): the real
 * tokenizer (o200k_base via gpt-tokenizer), plus OpenAI's documented per-message overhead.
 * Records built from these are flagged `usage_estimated`.
 */

const PER_MESSAGE = 3;
const PER_REPLY = 3;

export function countTextTokens(text: string): number {
  return text.length === 0 ? 0 : encode(text).length;
}

export function countPromptTokens(messages: readonly ChatMessage[]): number {
  let total = PER_REPLY;
  for (const message of messages) {
    total += PER_MESSAGE + countTextTokens(message.role);
    if (typeof message.content === 'string') total += countTextTokens(message.content);
    else if (Array.isArray(message.content)) {
      for (const part of message.content) if (part.type === 'text' && typeof part.text === 'string') total += countTextTokens(part.text);
    }
    for (const call of message.tool_calls ?? []) total += countTextTokens(call.function.name) + countTextTokens(call.function.arguments);
  }
  return total;
}
