/*
 * `npm run bench:probe`: a quick look while working on the hot path, not the DESIGN §7 report.
 * B0 (the fake upstream), B1 (the floor proxy) and G (everything on) in their own processes;
 * interleaved throughput rounds at concurrency 50 and latency rounds at concurrency 1; prints
 * requests/s, CPU per request and latency per round and the medians. About a minute.
 *
 * PROBE_ROUNDS (default 4) and PROBE_SECONDS (default 4) set the rounds. PROBE_PROFILE=1 also
 * writes a CPU profile of one more G under the same load (PROBE_PROFILE_CONNECTIONS sets its
 * concurrency, default 50) and prints its areas. PROBE_STREAMS=1 probes streams instead (the
 * bench's 64 chunks at 20 ms, PROBE_STREAM_CONCURRENCY at a time, default 10): time to first
 * token, chunk gap and CPU per chunk per round; PROBE_ALLOC=1 adds an allocation profile of G
 * over each stream round.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeProfile } from './cpu-profile';
import { cpuMs, load, log, median, quantile, REPLY_TEXT, Run, smokeTest, streamTarget, Target } from './harness';
import { runStreams } from './sse-client';

const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 4);
const SECONDS = Number(process.env.PROBE_SECONDS ?? 4);
const STREAMS = process.env.PROBE_STREAMS === '1';
const STREAM_CONCURRENCY = Number(process.env.PROBE_STREAM_CONCURRENCY ?? 10);
const ROOT = join(__dirname, '..', '..');

async function main(): Promise<void> {
  const run = new Run();
  try {
    await run.createDatabase();
    const { child: upstream, ready } = await run.spawn('upstream', 'upstream-server.js', [JSON.stringify({ text: REPLY_TEXT, chunks: 64, chunkDelayMs: 20 })]);
    const upstreamUrl = ready.url as string;
    const { child: floor, ready: floorReady } = await run.spawn('floor-proxy', 'floor-proxy.js', [new URL(upstreamUrl).origin]);
    const g = await run.startGateway('G', 'full', upstreamUrl);
    const direct = { authorization: 'Bearer sk-probe' };
    const targets: Target[] = [
      { name: 'B0', url: `${upstreamUrl}/chat/completions`, headers: direct, process: upstream },
      { name: 'B1', url: `${floorReady.url as string}/v1/chat/completions`, headers: direct, process: floor },
      { name: 'G', url: `${g.url}/v1/chat/completions`, headers: { authorization: `Bearer ${g.key}` }, process: g.child },
    ];
    for (const target of targets) await smokeTest(target);
    for (const target of targets) await load(target, 50, 2, false);
    if (STREAMS) {
      await probeStreams(targets);
      return;
    }

    const rps: Record<string, number[]> = {};
    const cpu: Record<string, number[]> = {};
    const p50: Record<string, number[]> = {};
    const p99: Record<string, number[]> = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const target of targets) {
        const before = cpuMs(target.process.pid);
        const res = await load(target, 50, SECONDS, false);
        const us = ((cpuMs(target.process.pid) - before) * 1000) / res.ok;
        (rps[target.name] ??= []).push(res.rps);
        (cpu[target.name] ??= []).push(us);
        const latCpuBefore = cpuMs(target.process.pid);
        const lat = await load(target, 1, 2, true);
        const latCpu = ((cpuMs(target.process.pid) - latCpuBefore) * 1000) / lat.ok;
        (p50[target.name] ??= []).push(quantile(lat.latencies, 0.5));
        (p99[target.name] ??= []).push(quantile(lat.latencies, 0.99));
        log(
          `round ${r + 1} ${target.name}: ${Math.round(res.rps)} req/s, ${Math.round(us)} µs CPU/request${res.errors + res.non2xx ? ` (${res.errors} errors, ${res.non2xx} non-2xx)` : ''}; c=1 p50 ${quantile(lat.latencies, 0.5).toFixed(3)} ms p99 ${quantile(lat.latencies, 0.99).toFixed(3)} ms, ${Math.round(latCpu)} µs CPU/request`,
        );
      }
    }
    for (const { name } of targets) {
      log(`median ${name}: ${Math.round(median(rps[name]!))} req/s, ${Math.round(median(cpu[name]!))} µs CPU/request, c=1 p50 ${median(p50[name]!).toFixed(3)} ms p99 ${median(p99[name]!).toFixed(3)} ms`);
    }
    log(`G / B1 = ${(median(rps.G!) / median(rps.B1!)).toFixed(2)}; added c=1 p50 ${(median(p50.G!) - median(p50.B0!)).toFixed(3)} ms p99 ${(median(p99.G!) - median(p99.B0!)).toFixed(3)} ms`);

    if (process.env.PROBE_PROFILE === '1') {
      const dir = run.logDir;
      const prof = await run.startGateway('G-prof', 'full', upstreamUrl, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', 'g.cpuprofile']);
      const target: Target = { name: 'G', url: `${prof.url}/v1/chat/completions`, headers: { authorization: `Bearer ${prof.key}` }, process: prof.child };
      await load(target, 50, 2, false);
      const from = (await prof.child.call('mark')) as number;
      const res = await load(target, Number(process.env.PROBE_PROFILE_CONNECTIONS ?? 50), SECONDS, false);
      const to = (await prof.child.call('mark')) as number;
      await run.stop(prof.child);
      const summary = summarizeProfile(join(dir, 'g.cpuprofile'), ROOT, from, to, 30);
      log(`profile (${Math.round(res.rps)} req/s): ${join(dir, 'g.cpuprofile')}`);
      for (const area of summary.areas.slice(0, 20)) log(`  ${area.area.padEnd(50)} ${(area.share * 100).toFixed(1)} %`);
      for (const fn of summary.top) log(`  ${fn.name.padEnd(30)} ${fn.where.padEnd(60)} ${(fn.share * 100).toFixed(1)} %`);
    }
  } finally {
    await run.cleanup(false);
  }
}

/** Stream rounds, interleaved: TTFT and chunk-gap p50/p99 per round, then the medians and G − B0. */
async function probeStreams(targets: Target[]): Promise<void> {
  const figures: Record<string, Record<'ttft50' | 'ttft99' | 'gap50' | 'gap99', number[]>> = {};
  for (const target of targets) await runStreams(streamTarget(target), 20, 10);
  for (let r = 0; r < ROUNDS; r++) {
    for (const target of targets) {
      if (process.env.PROBE_ALLOC === '1' && target.name === 'G') await target.process.call('allocationStart');
      const cpuBefore = cpuMs(target.process.pid);
      const timings = (await runStreams(streamTarget(target), 5 * STREAM_CONCURRENCY, STREAM_CONCURRENCY)).filter((t) => t.ok);
      const cpuPerChunk = ((cpuMs(target.process.pid) - cpuBefore) * 1000) / timings.reduce((n, t) => n + t.contentEvents, 0);
      const ttft = timings.map((t) => t.ttftMs);
      const gaps = timings.flatMap((t) => t.gapsMs);
      if (process.env.PROBE_ALLOC === '1' && target.name === 'G') await target.process.call('allocationStop', join(tmpdir(), `g-streams-${r}.heapprofile`));
      const f = (figures[target.name] ??= { ttft50: [], ttft99: [], gap50: [], gap99: [] });
      f.ttft50.push(quantile(ttft, 0.5));
      f.ttft99.push(quantile(ttft, 0.99));
      f.gap50.push(quantile(gaps, 0.5));
      f.gap99.push(quantile(gaps, 0.99));
      log(`round ${r + 1} ${target.name}: TTFT p50 ${quantile(ttft, 0.5).toFixed(2)} p99 ${quantile(ttft, 0.99).toFixed(2)} ms, gap p50 ${quantile(gaps, 0.5).toFixed(2)} p99 ${quantile(gaps, 0.99).toFixed(2)} ms, ${cpuPerChunk.toFixed(1)} µs CPU per chunk (${timings.length} ok)`);
    }
  }
  const m = (name: string, k: 'ttft50' | 'ttft99' | 'gap50' | 'gap99') => median(figures[name]![k]);
  for (const { name } of targets) log(`median ${name}: TTFT p50 ${m(name, 'ttft50').toFixed(2)} p99 ${m(name, 'ttft99').toFixed(2)} ms, gap p99 ${m(name, 'gap99').toFixed(2)} ms`);
  for (const name of ['B1', 'G']) log(`${name} − B0: TTFT p99 +${(m(name, 'ttft99') - m('B0', 'ttft99')).toFixed(2)} ms, gap p99 +${(m(name, 'gap99') - m('B0', 'gap99')).toFixed(2)} ms`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`probe failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
