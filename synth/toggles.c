/* Per-bit toggle counts of a scope's nets, counted inside Icarus (a VPI system task), for the
 * power flow (synth/power.py). It replaces a VCD of every net and its parse, and counts what
 * that VCD held: a bit's 0 <-> 1 changes between the values it has at the end of successive
 * time steps (zero-delay glitches inside a step are not toggles), from the end of the step in
 * which counting starts; transitions from or to x / z are not toggles.
 *
 *   $qarch_toggles(scope, "file");   every net and variable declared in ``scope`` (as
 *                                    $dumpvars(1, scope)); the counts are written to "file"
 *                                    at the end of the simulation, one line per net:
 *                                    name lsb width count[lsb] count[lsb + 1] ...
 *
 * Built on first use by synth/power.py with iverilog-vpi; needs a C compiler. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vpi_user.h>

typedef struct {
    vpiHandle h;
    char *name;
    int lsb, width, words, vector, dirty;
    PLI_UINT32 *aval, *bval; /* last end-of-step value, 32 bits a word (bval 1: x or z) */
    unsigned long *count;
} var_t;

static var_t *vars;
static int nvars, started, sync_pending;
static int *dirty;
static int ndirty;
static char *out_path;

static void sample(var_t *x, int count) {
    s_vpi_value v;
    v.format = vpiVectorVal;
    vpi_get_value(x->h, &v);
    for (int w = 0; w < x->words; w++) {
        PLI_UINT32 a = v.value.vector[w].aval, b = v.value.vector[w].bval;
        if (count) {
            /* bits known (0 or 1) before and after that differ */
            PLI_UINT32 t = (x->aval[w] ^ a) & ~x->bval[w] & ~b;
            while (t) {
                int i = __builtin_ctz(t);
                x->count[w * 32 + i]++;
                t &= t - 1;
            }
        }
        x->aval[w] = a;
        x->bval[w] = b;
    }
}

static void end_of_step(void) {
    for (int k = 0; k < ndirty; k++) {
        var_t *x = &vars[dirty[k]];
        x->dirty = 0;
        sample(x, started);
    }
    ndirty = 0;
    if (!started) { /* the first step: every net's value is where counting starts */
        for (int i = 0; i < nvars; i++)
            sample(&vars[i], 0);
        started = 1;
    }
}

static PLI_INT32 on_sync(p_cb_data cb) {
    (void)cb;
    sync_pending = 0;
    end_of_step();
    return 0;
}

static void schedule_sync(void) {
    static s_vpi_time zero = {vpiSimTime, 0, 0, 0};
    s_cb_data cb = {0};
    if (sync_pending)
        return;
    sync_pending = 1;
    cb.reason = cbReadOnlySynch;
    cb.cb_rtn = on_sync;
    cb.time = &zero;
    vpi_register_cb(&cb);
}

static PLI_INT32 on_change(p_cb_data cb) {
    int i = (int)(intptr_t)cb->user_data;
    if (!vars[i].dirty) {
        vars[i].dirty = 1;
        dirty[ndirty++] = i;
    }
    schedule_sync();
    return 0;
}

static PLI_INT32 on_end(p_cb_data cb) {
    (void)cb;
    end_of_step(); /* the last step's changes, if its read-only phase did not come */
    FILE *f = fopen(out_path, "w");
    if (!f) {
        vpi_printf("$qarch_toggles: cannot write %s\n", out_path);
        return 0;
    }
    for (int i = 0; i < nvars; i++) {
        var_t *x = &vars[i];
        fprintf(f, "%s %d %d %d", x->name, x->vector, x->lsb, x->width);
        for (int b = 0; b < x->width; b++)
            fprintf(f, " %lu", x->count[b]);
        fputc('\n', f);
    }
    fclose(f);
    return 0;
}

static int range_value(vpiHandle h, int which) {
    s_vpi_value v;
    vpiHandle e = vpi_handle(which, h);
    if (!e)
        return 0;
    v.format = vpiIntVal;
    vpi_get_value(e, &v);
    return v.value.integer;
}

static void add(vpiHandle h) {
    static s_vpi_time no_time = {vpiSuppressTime, 0, 0, 0};
    static s_vpi_value no_value = {vpiSuppressVal, {0}};
    s_cb_data cb = {0};
    var_t *x = &vars[nvars];
    x->h = h;
    x->name = strdup(vpi_get_str(vpiName, h));
    x->width = vpi_get(vpiSize, h);
    x->vector = vpi_get(vpiVector, h);
    x->lsb = 0;
    if (x->vector) {
        int l = range_value(h, vpiLeftRange), r = range_value(h, vpiRightRange);
        x->lsb = l < r ? l : r;
    }
    x->words = (x->width + 31) / 32;
    x->aval = calloc(x->words, sizeof *x->aval);
    x->bval = calloc(x->words, sizeof *x->bval);
    x->count = calloc(x->width, sizeof *x->count);
    cb.reason = cbValueChange;
    cb.cb_rtn = on_change;
    cb.obj = h;
    cb.time = &no_time;
    cb.value = &no_value;
    cb.user_data = (PLI_BYTE8 *)(intptr_t)nvars;
    vpi_register_cb(&cb);
    nvars++;
}

static PLI_INT32 calltf(PLI_BYTE8 *unused) {
    (void)unused;
    vpiHandle call = vpi_handle(vpiSysTfCall, NULL), args = vpi_iterate(vpiArgument, call);
    vpiHandle scope = args ? vpi_scan(args) : NULL, file = scope ? vpi_scan(args) : NULL;
    if (!scope || !file || vpi_get(vpiType, scope) != vpiModule) {
        vpi_printf("FATAL: $qarch_toggles(scope, \"file\") takes a module instance and a name\n");
        vpi_control(vpiFinish, 1);
        return 0;
    }
    s_vpi_value v;
    v.format = vpiStringVal;
    vpi_get_value(file, &v);
    out_path = strdup(v.value.str);
    vpi_free_object(args);
    static const int kinds[] = {vpiNet, vpiReg, vpiIntegerVar};
    int n = 0;
    for (int k = 0; k < 3; k++) {
        vpiHandle it = vpi_iterate(kinds[k], scope), h;
        while (it && (h = vpi_scan(it)))
            n++;
    }
    vars = calloc(n ? n : 1, sizeof *vars);
    dirty = calloc(n ? n : 1, sizeof *dirty);
    for (int k = 0; k < 3; k++) {
        vpiHandle it = vpi_iterate(kinds[k], scope), h;
        while (it && (h = vpi_scan(it)))
            add(h);
    }
    schedule_sync(); /* the snapshot at the end of this step */
    s_cb_data cb = {0};
    cb.reason = cbEndOfSimulation;
    cb.cb_rtn = on_end;
    vpi_register_cb(&cb);
    return 0;
}

static void register_task(void) {
    s_vpi_systf_data tf = {0};
    tf.type = vpiSysTask;
    tf.tfname = "$qarch_toggles";
    tf.calltf = calltf;
    vpi_register_systf(&tf);
}

void (*vlog_startup_routines[])(void) = {register_task, 0};
