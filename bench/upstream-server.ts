/*
 * B0: the fake OpenAI upstream of the e2e tests, in its own process, recording off. Started by
 * bench.ts with `fork`; settings come as JSON in argv[2]. IPC: `set` changes the reply
 * behaviour (stream pace), `stats` reports counters, `stop` exits. Exits when the parent goes.
 */
import type { FakeUpstream, UpstreamSettings } from '../test/support/fake-upstream';
import { startOpenAIUpstream } from '../test/support/openai-upstream';
import { serveIpc } from './ipc';

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? '{}') as UpstreamSettings;
  const upstream: FakeUpstream = await startOpenAIUpstream({ ...settings, record: false });
  serveIpc({
    set: (behaviour) => {
      upstream.set(behaviour as UpstreamSettings);
      return true;
    },
    stats: () => ({ requests: upstream.requestCount, inFlight: upstream.inFlight, peak: upstream.peakConcurrency }),
    stop: async () => {
      await upstream.close();
      return true;
    },
  });
  process.send!({ event: 'ready', url: upstream.url });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`upstream failed to start: ${(err as Error).message}`);
    process.exit(1);
  });
}
