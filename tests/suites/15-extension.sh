# tests/suites/15-extension.sh — pg_regress suites of the chainwatch extension against a private stack
#
# The extension was installed by the install-extension step; this brings up a stack (its Postgres
# preloads the library), runs `make installcheck` there and counts pg_regress's ok / FAILED lines.
extension_suite() {
    local dir log=$LOGS/extension.log
    dir=$(mktemp -d /tmp/cw-regress-XXXXXX)
    if ! bash tools/stack.sh up --dir "$dir" >"$LOGS/extension-stack.log" 2>&1; then
        add extension 0 1
        tail -n 30 "$LOGS/extension-stack.log" >&2
        rm -rf "$dir"
        return
    fi
    (
        # shellcheck source=/dev/null
        source "$dir/stack.env"
        make -C extension with_llvm=no installcheck
    ) >"$log" 2>&1
    local rc=$?
    local p f
    p=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+ ' "$log")
    f=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$log")
    [[ $rc -ne 0 && $f -eq 0 ]] && f=1
    add extension "$p" "$f"
    if [[ $rc -ne 0 ]]; then
        tail -n 30 "$log" >&2
        find build/regress -name regression.diffs -exec head -n 80 {} \; >&2
    fi
    bash tools/stack.sh down --dir "$dir" >/dev/null 2>&1
    rm -rf "$dir"
}
extension_suite
