# bash completion for choria(1): commands, subcommands, their flags, and file names after the
# flags that take a file. Installed as /usr/share/bash-completion/completions/choria.

_choria_flags() {
    local conn="--config= --server= --debug --help"
    case $1 in
    "server run") echo "--config= --provisioning-jwt= --debug --help" ;;
    "broker run") echo "--config= --debug --help" ;;
    "broker waiting") echo "--host= --port= --help" ;;
    "tool event") echo "--component= --type= $conn" ;;
    "tool emit")
        echo "--type= --component= --identity= --version= --new-version= --governor="
        echo "--governor-event= --sequence= --format= --count= --interval= $conn" ;;
    "tool fleet")
        echo "--count= --prefix= --domain= --token= --provisioning-jwt= --facts= --state-dir="
        echo "--connections= --drop= --delay= --delay-ms= --error= --vanish= --malformed="
        echo "--bad-csr= --wrong-csr= --jwt-fault= --jwt-fault-file= --seed= --duration="
        echo "--exit-when-provisioned --summary-json= --legacy-format --quiet --tls --no-sync $conn" ;;
    "jwt provisioning")
        echo "--token= --urls= --srv= --default --insecure --no-insecure --registration="
        echo "--facts= --username= --password= --extensions= --org= --protocol-v2 --upgrade"
        echo "--validity= --help" ;;
    "election view" | "election info") echo "--bucket= $conn" ;;
    "election evict") echo "--bucket= --force $conn" ;;
    "election file") echo "--bucket= --check $conn" ;;
    "election run") echo "--bucket= --terminate $conn" ;;
    esac
}

# Completes the value of flag $1 from the current word $2; returns 1 when the flag takes no
# value we can complete.
_choria_value() {
    local flag=$1 cur=$2
    case $flag in
    --config | --provisioning-jwt | --facts | --summary-json | --jwt-fault-file | --registration)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    --state-dir)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur")) ;;
    --type) COMPREPLY=($(compgen -W "alive governor provisioned shutdown startup upgraded" -- "$cur")) ;;
    --format) COMPREPLY=($(compgen -W "cloudevents choria" -- "$cur")) ;;
    --governor-event) COMPREPLY=($(compgen -W "enter exit timeouts eviction" -- "$cur")) ;;
    --server) COMPREPLY=($(compgen -W "nats:// tls://" -- "$cur")); compopt -o nospace 2>/dev/null ;;
    *) return 1 ;;
    esac
    return 0
}

_choria() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local group=${COMP_WORDS[1]:-} sub=${COMP_WORDS[2]:-}
    COMPREPLY=()

    # bash splits --flag=value at '=' (COMP_WORDBREAKS): "--config" "=" "value".
    if [ "$cur" = "=" ] && [[ $prev == --* ]]; then
        _choria_value "$prev" "" && return
        return
    fi
    if [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then
        _choria_value "${COMP_WORDS[COMP_CWORD-2]}" "$cur" && return
        return
    fi

    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "server broker tool jwt election --help --version" -- "$cur"))
        return
    fi
    if [ "$COMP_CWORD" -eq 2 ]; then
        case $group in
        server) COMPREPLY=($(compgen -W "run" -- "$cur")) ;;
        broker) COMPREPLY=($(compgen -W "run waiting" -- "$cur")) ;;
        tool) COMPREPLY=($(compgen -W "event emit fleet" -- "$cur")) ;;
        jwt) COMPREPLY=($(compgen -W "provisioning" -- "$cur")) ;;
        election) COMPREPLY=($(compgen -W "view info evict file run" -- "$cur")) ;;
        esac
        return
    fi

    # A flag's value given as a separate word: --config FILE.
    if [[ $prev == --* ]] && _choria_value "$prev" "$cur"; then
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_choria_flags "$group $sub")" -- "$cur"))
        [[ ${COMPREPLY[0]:-} == *= ]] && compopt -o nospace 2>/dev/null
        return
    fi
    # Positional file arguments: jwt provisioning FILE SIGNING-KEY, election file FILE.
    case "$group $sub" in
    "jwt provisioning" | "election file")
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    "election run")
        COMPREPLY=($(compgen -c -- "$cur")) ;;
    esac
}

complete -F _choria choria
