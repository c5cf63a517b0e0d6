# bash completion for choria-provisioner(1). Installed as
# /usr/share/bash-completion/completions/choria-provisioner.

_choria_provisioner() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} flag=""
    COMPREPLY=()
    # --flag=value arrives as "--flag" "=" "value" (COMP_WORDBREAKS has '=').
    if [ "$cur" = "=" ]; then
        flag=$prev cur=""
    elif [ "$prev" = "=" ]; then
        flag=${COMP_WORDS[COMP_CWORD-2]}
    elif [[ $prev == --* ]]; then
        flag=$prev
    fi
    case $flag in
    --config | --choria-config | --pid)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "--config= --choria-config= --pid= --debug --version --help" -- "$cur"))
        [[ ${COMPREPLY[0]:-} == *= ]] && compopt -o nospace 2>/dev/null
        return
    fi
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "run" -- "$cur"))
    fi
}

complete -F _choria_provisioner choria-provisioner
