import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, AppConfig, AccountConfig } from '../config/app-config';
import { AnthropicAdapter } from './anthropic/anthropic.adapter';
import { MockAdapter } from './mock/mock.adapter';
import { OpenAIAdapter } from './openai/openai.adapter';
import type { ProviderAdapter } from './provider';

/** One adapter per configured account, built once at start-up (each owns its connection pool). */
@Injectable()
export class ProviderRegistry implements OnApplicationShutdown {
  private readonly adapters = new Map<string, ProviderAdapter>();

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    for (const account of config.accounts) this.adapters.set(account.id, createAdapter(account));
  }

  adapterFor(accountId: string): ProviderAdapter {
    const adapter = this.adapters.get(accountId);
    if (!adapter) throw new Error(`no adapter for account ${accountId}`);
    return adapter;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.adapters.values()].map((adapter) => adapter.close()));
  }
}

export function createAdapter(account: AccountConfig): ProviderAdapter {
  switch (account.provider) {
    case 'openai':
      return new OpenAIAdapter(account);
    case 'anthropic':
      return new AnthropicAdapter(account);
    case 'mock':
      return new MockAdapter(account);
  }
}
