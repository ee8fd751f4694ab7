import { Injectable } from '@nestjs/common';
import { GatewayError } from '../common/gateway-error';
import { isDatabaseUnavailable } from '../database/database-errors';
import { UsageGroup, UsageGroupBy, UsageRepository, UsageTotals } from './usage.repository';

export interface UsageQuery {
  from?: string;
  to?: string;
  key_id?: string;
  model?: string;
  group_by?: UsageGroupBy;
}

/** The answer of `GET /admin/usage` (DESIGN §3.4). */
export interface UsageSummary {
  object: 'usage';
  from: string;
  to: string;
  totals: UsageTotals;
  groups: UsageGroup[];
}

const DEFAULT_WINDOW_MS = 30 * 24 * 3600 * 1000;
/** A time of day with no zone designator: the API speaks UTC, so it is read as UTC, not server-local time. */
const NO_ZONE = /T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?$/;

/** Usage totals for the admin API; the sums are computed by Postgres. */
@Injectable()
export class UsageService {
  constructor(private readonly repository: UsageRepository) {}

  /** `from` is inclusive and `to` exclusive; missing bounds mean the 30 days up to now. */
  async summarize(query: UsageQuery, now = new Date()): Promise<UsageSummary> {
    const to = query.to !== undefined ? parseInstant(query.to, 'to') : now;
    const from = query.from !== undefined ? parseInstant(query.from, 'from') : new Date(to.getTime() - DEFAULT_WINDOW_MS);
    if (from.getTime() > to.getTime()) throw GatewayError.invalidValue('from', 'from must not be after to.');
    let result: Awaited<ReturnType<UsageRepository['summarize']>>;
    try {
      result = await this.repository.summarize({ from, to, keyId: query.key_id, model: query.model }, query.group_by);
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw GatewayError.storeUnavailable('The usage store');
      throw err;
    }
    return { object: 'usage', from: from.toISOString(), to: to.toISOString(), ...result };
  }
}

function parseInstant(value: string, param: string): Date {
  const date = new Date(NO_ZONE.test(value) ? `${value}Z` : value);
  if (Number.isNaN(date.getTime())) throw GatewayError.invalidValue(param, `${param} must be an ISO 8601 timestamp.`);
  return date;
}
