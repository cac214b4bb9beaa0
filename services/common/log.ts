/**
 * Tiny structured logger: one JSON line per event on stderr (time, level, service, msg, fields), so
 * test helpers and log shippers can parse it. Kept minimal on purpose; a later change may swap in pino.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

function minLevel(): number {
  const env = (process.env.SPI_LOG_LEVEL ?? 'info').toLowerCase() as LogLevel;
  return RANK[env] ?? RANK.info;
}

/** Errors do not serialise with JSON.stringify; keep what a reader needs. */
function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const kind = (value as { kind?: unknown }).kind;
    return { name: value.name, message: value.message, ...(kind ? { kind } : {}), stack: value.stack };
  }
  return value;
}

export function createLogger(service: string, base: LogFields = {}): Logger {
  const threshold = minLevel();
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return;
    const line: LogFields = { time: new Date().toISOString(), level, service, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) line[k] = plain(v);
    process.stderr.write(JSON.stringify(line) + '\n');
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => createLogger(service, { ...base, ...fields }),
  };
}
