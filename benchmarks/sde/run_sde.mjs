// Generate JavaScript from a Vensim model with SDEverywhere and time its runs.
// Usage: node run_sde.mjs MODEL.mdl OUTPUT_VAR [REPEATS]
// Prints one JSON line: {"ms_best": ..., "ms_median": ..., "final": ..., "generate_ms": ...}
import fs from 'fs'
import os from 'os'
import path from 'path'
import { parseAndGenerate } from '@sdeverywhere/compile'
import { createSynchronousModelRunner } from '@sdeverywhere/runtime'

const [mdl, outVar, repeatsArg] = process.argv.slice(2)
const repeats = Number(repeatsArg || 20)
const buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sde-'))
const name = path.basename(mdl, '.mdl')
const text = fs.readFileSync(mdl, 'utf8')
const spec = { inputVarNames: [], outputVarNames: [outVar] }
let t0 = performance.now()
await parseAndGenerate(text, 'vensim', spec, ['generateJS'], path.dirname(path.resolve(mdl)), name, buildDir)
const generateMs = performance.now() - t0
const mod = await import(path.join(buildDir, `${name}.js`))
const model = await mod.default()
const runner = createSynchronousModelRunner(model)
const outputs = runner.createOutputs()
const times = []
for (let i = 0; i < repeats; i++) {
  t0 = performance.now()
  runner.runModelSync([], outputs)
  times.push(performance.now() - t0)
}
times.sort((a, b) => a - b)
const series = outputs.varSeries[0]
const last = series.points[series.points.length - 1]
console.log(JSON.stringify({
  ms_best: times[0],
  ms_median: times[Math.floor(times.length / 2)],
  final: last.y,
  final_time: last.x,
  generate_ms: generateMs
}))
