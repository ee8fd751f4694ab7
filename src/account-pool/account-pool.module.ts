import { Module } from '@nestjs/common';
import { AccountPool } from './account-pool.service';
import { MemorySlotLedger, SLOT_LEDGER } from './slot-ledger';

/** The account pool; a Redis-backed ledger replaces the memory one by overriding SLOT_LEDGER. */
@Module({
  providers: [{ provide: SLOT_LEDGER, useClass: MemorySlotLedger }, AccountPool],
  exports: [AccountPool],
})
export class AccountPoolModule {}
