/**
 * grpc-js (1.14, under etcd3) sets the TLS server name to the endpoint's host even when that is an IP
 * address, and Node then prints DEP0123 ("Setting the TLS ServerName to an IP address is not permitted
 * by RFC 6066") on every command that reaches etcd over TLS by address. Node sends no server name for
 * an IP and the certificate is checked against the address all the same, so the warning names nothing
 * an operator can change. This drops that one warning; every other passes through unchanged.
 * Called first by each entry point, before grpc-js is loaded.
 */
export function dropIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  const filtered = (warning: string | Error, ...rest: unknown[]): void => {
    if (warningCode(warning, rest) !== 'DEP0123') emit(warning, ...rest);
  };
  process.emitWarning = filtered;
}

/** The code of a warning, however emitWarning was called: (w, type, code), (w, { code }) or an Error. */
function warningCode(warning: string | Error, rest: unknown[]): string | undefined {
  if (warning instanceof Error) return (warning as NodeJS.ErrnoException).code;
  const [typeOrOptions, code] = rest;
  if (typeof typeOrOptions === 'object' && typeOrOptions !== null) return (typeOrOptions as { code?: string }).code;
  return typeof code === 'string' ? code : undefined;
}
