/*
 * Compares two V8 heap snapshots (what `v8.writeHeapSnapshot` writes) by constructor: which kinds
 * of object a batch of open streams added, by count and by their own (shallow) size. Evidence for
 * the memory figure, not a leak hunter: retained sizes would need the whole graph.
 */
import { readFileSync } from 'node:fs';

interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

interface Tally {
  count: number;
  bytes: number;
}

export interface HeapGrowth {
  /** A constructor name, or a V8 kind in parentheses: (string), (closure ...), (array), (code)... */
  kind: string;
  count: number;
  bytes: number;
}

export interface HeapDiff {
  beforeBytes: number;
  afterBytes: number;
  top: HeapGrowth[];
}

function tally(path: string): { byKind: Map<string, Tally>; total: number } {
  const file = JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshotFile;
  const fields = file.snapshot.meta.node_fields;
  const types = file.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const byKind = new Map<string, Tally>();
  let total = 0;
  const nodes = file.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!;
    const size = nodes[i + sizeAt]!;
    total += size;
    let kind: string;
    if (type === 'object' || type === 'native') kind = file.strings[nodes[i + nameAt]!]!;
    else if (type === 'closure') kind = `(closure ${file.strings[nodes[i + nameAt]!] || 'anonymous'})`;
    else kind = `(${type})`;
    const entry = byKind.get(kind);
    if (entry) {
      entry.count++;
      entry.bytes += size;
    } else {
      byKind.set(kind, { count: 1, bytes: size });
    }
  }
  return { byKind, total };
}

/** What grew between two snapshots, largest first. */
export function diffHeapSnapshots(beforePath: string, afterPath: string, top = 15): HeapDiff {
  const before = tally(beforePath);
  const after = tally(afterPath);
  const growth: HeapGrowth[] = [];
  for (const [kind, now] of after.byKind) {
    const then = before.byKind.get(kind) ?? { count: 0, bytes: 0 };
    if (now.bytes > then.bytes) growth.push({ kind, count: now.count - then.count, bytes: now.bytes - then.bytes });
  }
  growth.sort((a, b) => b.bytes - a.bytes);
  return { beforeBytes: before.total, afterBytes: after.total, top: growth.slice(0, top) };
}
