// run.mjs — runs one Wasm workload (a WASI reactor) in node: instantiate,
// _initialize, then the exported function (default `run`).
//   node --no-turbo-fast-api-calls run.mjs WORKLOAD.wasm [EXPORT]
import { readFile } from 'node:fs/promises';
import { argv, exit, stderr } from 'node:process';
import { WASI } from 'node:wasi';

const [file, entry = 'run'] = argv.slice(2);
if (!file) {
  stderr.write('usage: node run.mjs WORKLOAD.wasm [EXPORT]\n');
  exit(2);
}
const wasi = new WASI({ version: 'preview1', args: [file], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, {
  wasi_snapshot_preview1: wasi.wasiImport,
});
wasi.initialize(instance);
if (typeof instance.exports[entry] !== 'function') {
  stderr.write(`run.mjs: ${file} exports no function '${entry}'\n`);
  exit(2);
}
instance.exports[entry]();
