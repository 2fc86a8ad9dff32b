/* symbols.c — naming a profile's frames offline with elfutils' libdwfl.
 *
 * Each module of the profile gets its own Dwfl session, reported at bias 0:
 * frame addresses are already module-relative (pc - load bias), so they are
 * the ELF file's own vaddrs and two modules never need distinct bases.  A
 * session opens lazily, on the first frame that needs it, and stays open. */
#include "symbols.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEBUG_BUILD_ID_DIR "/usr/lib/debug/.build-id"
#define ARENA_CHUNK 65536

/* Strings that live as long as the symbolizer: bump-allocated in chunks. */
struct arena_chunk {
  struct arena_chunk *next;
  size_t used, cap;
  char data[];
};

enum module_state { MODULE_UNOPENED, MODULE_OPEN, MODULE_FAILED };

struct module_session {
  enum module_state state;
  Dwfl *dwfl;
  Dwfl_Module *mod;
};

typedef char *(*cxa_demangle_fn)(const char *, char *, size_t *, int *);

struct tp_symbolizer {
  const struct tp_profile *profile;
  struct module_session *modules;
  size_t n_modules;
  struct tp_symbol *symbols;  /* by frame; done[f] says whether symbols[f] is filled */
  bool *done;
  size_t n_frames;
  struct arena_chunk *arena;
  void *libstdcxx;            /* dlopen'ed for __cxa_demangle, or NULL */
  cxa_demangle_fn cxa_demangle;
  Dwfl_Callbacks callbacks;   /* debuginfo_path NULL: elfutils' default, which has /usr/lib/debug */
};

static void *xrealloc(void *p, size_t size) {
  void *q = realloc(p, size ? size : 1);
  if (!q) {
    fprintf(stderr, "tierpool: out of memory\n");
    exit(2);
  }
  return q;
}

static const char *arena_strndup(struct tp_symbolizer *s, const char *str, size_t len) {
  struct arena_chunk *c = s->arena;
  if (!c || c->cap - c->used < len + 1) {
    size_t cap = len + 1 > ARENA_CHUNK ? len + 1 : ARENA_CHUNK;
    c = xrealloc(NULL, sizeof *c + cap);
    c->next = s->arena, c->used = 0, c->cap = cap;
    s->arena = c;
  }
  char *out = c->data + c->used;
  memcpy(out, str, len);
  out[len] = '\0';
  c->used += len + 1;
  return out;
}

static const char *arena_strdup(struct tp_symbolizer *s, const char *str) {
  return str ? arena_strndup(s, str, strlen(str)) : NULL;
}

static const char *arena_printf(struct tp_symbolizer *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *arena_printf(struct tp_symbolizer *s, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return arena_strdup(s, "?");
  if ((size_t)n < sizeof buf) return arena_strndup(s, buf, (size_t)n);
  char *big = xrealloc(NULL, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  const char *out = arena_strndup(s, big, (size_t)n);
  free(big);
  return out;
}

/* ---- Demangling ------------------------------------------------------------
 * Rust's legacy scheme is an Itanium nested name whose last element is the
 * hash h<16 hex>, with $..$ escapes inside identifiers: done here.  C++ goes
 * to libstdc++'s __cxa_demangle when the library can be loaded; otherwise the
 * nested name alone (no parameters) is spelled out here. */

struct text {
  char *buf;
  size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n) {
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    t->buf = xrealloc(t->buf, t->cap);
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

/* Parses <len><name> at *p; the name's bounds in *name, *n.  0 if malformed. */
static int source_name(const char **p, const char *end, const char **name, size_t *n) {
  size_t len = 0;
  const char *q = *p;
  if (q >= end || *q < '1' || *q > '9') return 0;
  while (q < end && *q >= '0' && *q <= '9') {
    len = len * 10 + (size_t)(*q++ - '0');
    if (len > (size_t)(end - q)) return 0;
  }
  *name = q, *n = len;
  *p = q + len;
  return 1;
}

static int is_rust_hash(const char *name, size_t n) {
  if (n != 17 || name[0] != 'h') return 0;
  for (size_t i = 1; i < n; i++)
    if (!strchr("0123456789abcdef", name[i])) return 0;
  return 1;
}

static const struct {
  const char *code, *text;
} rust_escapes[] = {
    {"$SP$", "@"}, {"$BP$", "*"}, {"$RF$", "&"}, {"$LT$", "<"}, {"$GT$", ">"}, {"$LP$", "("}, {"$RP$", ")"},
    {"$C$", ","},
};

/* One Rust identifier with its escapes undone. */
static void rust_identifier(struct text *t, const char *s, size_t n) {
  if (n >= 2 && s[0] == '_' && s[1] == '$') s++, n--; /* an identifier may not start with '$' */
  for (size_t i = 0; i < n;) {
    if (s[i] == '.') {
      int two = i + 1 < n && s[i + 1] == '.';
      text_add(t, two ? "::" : ".", two ? 2 : 1);
      i += two ? 2 : 1;
      continue;
    }
    if (s[i] == '$') {
      size_t j = i + 1;
      while (j < n && s[j] != '$') j++;
      if (j < n) {
        size_t len = j - i + 1;
        int known = 0;
        for (size_t e = 0; e < sizeof rust_escapes / sizeof rust_escapes[0] && !known; e++)
          if (strlen(rust_escapes[e].code) == len && memcmp(s + i, rust_escapes[e].code, len) == 0) {
            text_add(t, rust_escapes[e].text, strlen(rust_escapes[e].text));
            known = 1;
          }
        if (!known && len >= 4 && s[i + 1] == 'u') { /* $u7b$: a character by its code */
          char hex[8] = {0}, *endp;
          size_t hl = len - 3 < sizeof hex - 1 ? len - 3 : sizeof hex - 1;
          memcpy(hex, s + i + 2, hl);
          unsigned long c = strtoul(hex, &endp, 16);
          if (*endp == '\0' && c > 0 && c < 0x80) {
            char ch = (char)c;
            text_add(t, &ch, 1);
            known = 1;
          }
        }
        if (known) {
          i = j + 1;
          continue;
        }
      }
    }
    text_add(t, s + i, 1);
    i++;
  }
}

/* _ZN...E (Rust legacy, or the nested-name part of a C++ name): the parts
 * joined by "::", Rust's hash dropped.  NULL if sym is not of that shape, or
 * (rust_only) not Rust. */
static char *demangle_nested(const char *sym, int rust_only) {
  size_t symlen = strlen(sym);
  const char *dot = strstr(sym, ".llvm."); /* LTO suffix */
  const char *end = dot ? dot : sym + symlen;
  const char *p = sym + 3;
  if (strncmp(sym, "_ZN", 3) != 0) {
    if (rust_only || strncmp(sym, "_Z", 2) != 0) return NULL;
    p = sym + 2; /* _Z<len>name: a function at namespace scope */
    const char *name;
    size_t n;
    if (!source_name(&p, end, &name, &n)) return NULL;
    struct text t = {0};
    text_add(&t, name, n);
    return t.buf;
  }
  struct text t = {0};
  int parts = 0, rust = 0;
  while (p < end && *p != 'E') {
    const char *name;
    size_t n;
    if (!source_name(&p, end, &name, &n)) {
      free(t.buf);
      return NULL;
    }
    if (is_rust_hash(name, n) && p < end && *p == 'E') {
      rust = 1;
      break;
    }
    if (parts++) text_add(&t, "::", 2);
    rust_identifier(&t, name, n);
  }
  if (p >= end || *p != 'E' || parts == 0 || (rust_only && !rust)) {
    free(t.buf);
    return NULL;
  }
  return t.buf;
}

/* A demangled copy in the arena, or sym itself if it is not mangled. */
static const char *demangle(struct tp_symbolizer *s, const char *sym) {
  if (strncmp(sym, "_Z", 2) != 0) return arena_strdup(s, sym);
  char *out = demangle_nested(sym, 1);
  if (!out && s->cxa_demangle) {
    int status = 0;
    out = s->cxa_demangle(sym, NULL, NULL, &status);
    if (status != 0) out = NULL;
  }
  if (!out) out = demangle_nested(sym, 0);
  if (!out) return arena_strdup(s, sym);
  const char *kept = arena_strdup(s, out);
  free(out);
  return kept;
}

/* ---- Modules ---------------------------------------------------------------- */

static int build_id_equal(Dwfl_Module *mod, const struct tp_prof_module *m) {
  const unsigned char *bits;
  GElf_Addr vaddr;
  int len = dwfl_module_build_id(mod, &bits, &vaddr);
  return len > 0 && (size_t)len == m->build_id_len && memcmp(bits, m->build_id, m->build_id_len) == 0;
}

/* file opened to read if it is a regular file, else -1: a path from the trace
 * may name a FIFO or a device, whose open or read would wait forever. */
static int open_regular(const char *file) {
  int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO's open waits for a writer without it */
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) close(fd), fd = -1;
  return fd;
}

/* A session on file; NULL unless it is a regular file that opens (and its build-id is the recorded one). */
static Dwfl *open_session(struct tp_symbolizer *s, const char *file, const struct tp_prof_module *m, Dwfl_Module **mod) {
  int fd = open_regular(file);
  if (fd < 0) return NULL;
  Dwfl *dwfl = dwfl_begin(&s->callbacks);
  if (!dwfl) {
    close(fd);
    return NULL;
  }
  dwfl_report_begin(dwfl);
  /* base 0 with add_p_vaddr: bias 0 for ET_DYN and ET_EXEC alike.  fd is the session's once reported. */
  *mod = dwfl_report_elf(dwfl, m->path, file, fd, 0, true);
  if (!*mod) close(fd);
  dwfl_report_end(dwfl, NULL, NULL);
  if (*mod && (m->build_id_len == 0 || build_id_equal(*mod, m))) return dwfl;
  dwfl_end(dwfl);
  return NULL;
}

static struct module_session *module_session(struct tp_symbolizer *s, uint32_t index) {
  if (index >= s->n_modules) {
    size_t n = s->profile->n_modules;
    s->modules = xrealloc(s->modules, n * sizeof *s->modules);
    memset(s->modules + s->n_modules, 0, (n - s->n_modules) * sizeof *s->modules);
    s->n_modules = n;
  }
  struct module_session *ms = &s->modules[index];
  if (ms->state != MODULE_UNOPENED) return ms;
  const struct tp_prof_module *m = &s->profile->modules[index];
  ms->state = MODULE_FAILED;
  if (m->path && m->path[0] == '/') ms->dwfl = open_session(s, m->path, m, &ms->mod);
  if (!ms->dwfl && m->build_id_len >= 2) { /* the file changed or is gone: its separate debug file */
    char path[sizeof DEBUG_BUILD_ID_DIR + 2 * 64 + 16];
    int n = snprintf(path, sizeof path, "%s/%02x/", DEBUG_BUILD_ID_DIR, m->build_id[0]);
    for (size_t i = 1; i < m->build_id_len; i++) n += snprintf(path + n, sizeof path - (size_t)n, "%02x", m->build_id[i]);
    snprintf(path + n, sizeof path - (size_t)n, ".debug");
    ms->dwfl = open_session(s, path, m, &ms->mod);
  }
  if (ms->dwfl) ms->state = MODULE_OPEN;
  return ms;
}

/* ---- Frames ----------------------------------------------------------------- */

static const char *die_name(Dwarf_Die *die) {
  Dwarf_Attribute attr;
  const char *name = NULL;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) || dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
    name = dwarf_formstring(&attr);
  if (!name && dwarf_attr_integrate(die, DW_AT_name, &attr)) name = dwarf_formstring(&attr);
  return name;
}

/* The name DWARF gives the innermost function at addr when that function was
 * inlined (the symbol table only knows the function it was inlined into), or
 * when wanted is set, whatever it is.  NULL if none. */
static const char *dwarf_function(Dwfl_Module *mod, Dwarf_Addr addr, int wanted) {
  Dwarf_Addr bias;
  Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias);
  if (!cu) return NULL;
  Dwarf_Die *scopes = NULL;
  int n = dwarf_getscopes(cu, addr - bias, &scopes);
  const char *name = NULL;
  for (int i = 0; i < n && !name; i++) {
    int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_inlined_subroutine) name = die_name(&scopes[i]);
    else if (tag == DW_TAG_subprogram) {
      if (wanted) name = die_name(&scopes[i]);
      break;
    }
  }
  free(scopes);
  return name;
}

/* file, made absolute with the compilation directory when it is relative,
 * and "dir/.." steps taken out (lexically: as the compiler saw the tree). */
static const char *source_path(struct tp_symbolizer *s, const char *file, const char *comp_dir) {
  struct text t = {0};
  if (file[0] != '/' && comp_dir && comp_dir[0] == '/') {
    text_add(&t, comp_dir, strlen(comp_dir));
    text_add(&t, "/", 1);
  }
  text_add(&t, file, strlen(file));
  char *path = t.buf, *out = path;
  for (char *in = path; *in;) {
    char *end = strchr(in, '/');
    size_t len = end ? (size_t)(end - in) : strlen(in);
    char *last = out > path ? out - 1 : out; /* the start of the last part kept ("x/") */
    while (last > path && last[-1] != '/') last--;
    bool up = len == 2 && in[0] == '.' && in[1] == '.';
    if (up && out - last > 1 && !(out - last == 3 && last[0] == '.' && last[1] == '.')) {
      out = last;
    } else if (!(len == 1 && in[0] == '.') && !(len == 0 && out > path)) {
      memmove(out, in, len);
      out += len;
      if (end) *out++ = '/';
    }
    in += len + (end ? 1 : 0);
  }
  *out = '\0';
  const char *kept = arena_strdup(s, path);
  free(path);
  return kept;
}

static const char *basename_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static void symbolize_in_module(struct tp_symbolizer *s, struct tp_symbol *sym, const struct tp_prof_frame *f) {
  const struct tp_prof_module *m = &s->profile->modules[f->module];
  sym->module = m->path;
  sym->offset = f->addr ? f->addr - 1 : 0;
  struct module_session *ms = module_session(s, f->module);
  if (ms->state == MODULE_OPEN) {
    GElf_Off off;
    GElf_Sym elfsym;
    const char *name = dwarf_function(ms->mod, sym->offset, 0);
    if (!name) name = dwfl_module_addrinfo(ms->mod, sym->offset, &off, &elfsym, NULL, NULL, NULL);
    if (!name) name = dwarf_function(ms->mod, sym->offset, 1);
    if (name) {
      const char *at = strchr(name, '@'); /* malloc@@GLIBC_2.2.5: the version is noise here */
      sym->function = demangle(s, at ? arena_strndup(s, name, (size_t)(at - name)) : name);
    }
    Dwfl_Line *line = dwfl_module_getsrc(ms->mod, sym->offset);
    int lineno = 0;
    const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (file && lineno > 0) {
      sym->file = source_path(s, file, dwfl_line_comp_dir(line));
      sym->line = (uint32_t)lineno;
    }
  }
  if (sym->function && sym->file)
    sym->display = arena_printf(s, "%s (%s:%" PRIu32 ")", sym->function, basename_of(sym->file), sym->line);
  else if (sym->function)
    sym->display = sym->function;
  else
    sym->display = arena_printf(s, "%s+0x%" PRIx64, basename_of(m->path ? m->path : "?"), sym->offset);
}

const struct tp_symbol *tp_symbolize(struct tp_symbolizer *s, uint32_t frame) {
  const struct tp_profile *p = s->profile;
  if (frame >= p->n_frames) return NULL;
  if (frame >= s->n_frames) { /* the profile grew since the symbolizer was made */
    s->symbols = xrealloc(s->symbols, p->n_frames * sizeof *s->symbols);
    s->done = xrealloc(s->done, p->n_frames * sizeof *s->done);
    memset(s->done + s->n_frames, 0, (p->n_frames - s->n_frames) * sizeof *s->done);
    s->n_frames = p->n_frames;
  }
  struct tp_symbol *sym = &s->symbols[frame];
  if (s->done[frame]) return sym;
  memset(sym, 0, sizeof *sym);
  const struct tp_prof_frame *f = &p->frames[frame];
  if (f->module != TP_PROFILE_NONE && f->module < p->n_modules) {
    symbolize_in_module(s, sym, f);
  } else if (f->jit || f->jit_name) {
    sym->jit = true;
    sym->offset = f->addr;
    sym->function = f->jit_name ? arena_strdup(s, f->jit_name) : NULL;
    sym->display = f->jit_name ? arena_printf(s, "[jit] %s", f->jit_name) : "[jit]";
  } else {
    sym->offset = f->addr;
    sym->display = arena_printf(s, "0x%" PRIx64, f->addr);
  }
  sym->allocator = tp_symbol_is_allocator(sym);
  s->done[frame] = true;
  return sym;
}

uint32_t tp_symbolize_site(struct tp_symbolizer *s, const struct tp_prof_stack *st) {
  uint32_t first = 0;
  while (first < st->depth && tp_symbolize(s, st->frames[first])->allocator) first++;
  return first < st->depth ? first : 0;
}

bool tp_symbol_is_allocator(const struct tp_symbol *sym) {
  static const char *const entry[] = {"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
                                      "aligned_alloc", "memalign", "valloc", "pvalloc", "__libc_malloc",
                                      "__libc_calloc", "__libc_realloc", "__libc_memalign", "__posix_memalign",
                                      "__rust_alloc", "__rust_alloc_zeroed", "__rust_realloc", "__rdl_alloc",
                                      "__rdl_alloc_zeroed", "__rdl_realloc", "__rg_alloc", "__rg_alloc_zeroed",
                                      "__rg_realloc"};
  static const char *const prefixes[] = {"operator new", "_Znw", "_Zna", "alloc::alloc::", "alloc::raw_vec::",
                                         "<alloc::alloc::Global as core::alloc::Allocator>"};
  if (sym->module && strncmp(basename_of(sym->module), "libtierpool", 11) == 0) return true;
  if (!sym->function) return false;
  for (size_t i = 0; i < sizeof entry / sizeof entry[0]; i++)
    if (strcmp(sym->function, entry[i]) == 0) return true;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(sym->function, prefixes[i], strlen(prefixes[i])) == 0) return true;
  return false;
}

struct tp_symbolizer *tp_symbolizer_new(const struct tp_profile *p) {
  struct tp_symbolizer *s = xrealloc(NULL, sizeof *s);
  memset(s, 0, sizeof *s);
  s->profile = p;
  s->callbacks.find_elf = dwfl_build_id_find_elf;
  s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
  s->callbacks.section_address = dwfl_offline_section_address;
  s->libstdcxx = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
  if (s->libstdcxx) s->cxa_demangle = (cxa_demangle_fn)dlsym(s->libstdcxx, "__cxa_demangle");
  return s;
}

void tp_symbolizer_free(struct tp_symbolizer *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n_modules; i++)
    if (s->modules[i].dwfl) dwfl_end(s->modules[i].dwfl);
  free(s->modules);
  free(s->symbols);
  free(s->done);
  while (s->arena) {
    struct arena_chunk *next = s->arena->next;
    free(s->arena);
    s->arena = next;
  }
  if (s->libstdcxx) dlclose(s->libstdcxx);
  free(s);
}
